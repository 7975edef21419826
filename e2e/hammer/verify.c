/*
 * e2e/hammer/verify.c - the checks of e2e/hammer (main.c lists them), the
 * per-offset records they compare, and the final read-back of the stream.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hammer.h"

/* ---- checks ---- */

static const char *const check_name[C_N] = {
    [C_ACKED] = "acknowledged events stored with their payload",
    [C_BELOW_CURSOR] = "events below the group cursor were delivered",
    [C_DRAINED] = "after draining: every event delivered, lag 0",
    [C_STREAM] = "offsets contiguous, payloads sent once",
    [C_DELIVERY] = "deliveries carried the stored payload",
    [C_CURSOR_DURABLE] = "group cursor survives kill -9",
    [C_ERRORS] = "no unexpected server error",
    [C_EXIT] = "server never crashed, stopped cleanly",
    [C_EXACTLY_ONCE] = "idempotent producers: every event sent stored once",
    [C_LATEST] = "compacted: GET gives each key's last event in the stream",
};

atomic_ulong hm_check_fail[C_N];
bool hm_check_run[C_N];

__attribute__((format(printf, 2, 3))) void hm_fail(int check, const char *fmt, ...)
{
    unsigned long n = atomic_fetch_add(&hm_check_fail[check], 1);
    if (n >= NOTE_LIMIT) {
        if (n == NOTE_LIMIT)
            fprintf(stderr, "hammer: [%s] more failures not shown\n", check_name[check]);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hammer: FAIL [%s] %s\n", check_name[check], msg);
}
int hm_report_checks(void)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < C_N; i++) {
        if (!hm_check_run[i])
            continue;
        unsigned long n = atomic_load(&hm_check_fail[i]);
        printf("  check %-48s %s", check_name[i], n ? "FAILED" : "ok");
        if (n)
            printf(" (%lu)", n);
        printf("\n");
        if (n)
            failed++;
        else
            passed++;
    }
    printf("hammer: %d passed, %d failed (seed %" PRIu64 ")\n", passed, failed, hm_opt.seed);
    return failed;
}

/* ---- per-offset records ---- */

uint64_t *hm_exp_at, *hm_dval;
uint32_t *hm_deliv;
uint64_t hm_cap;
atomic_ulong hm_sent_seq[MAX_PRODUCERS + 1];

uint64_t hm_pack_id(unsigned p, uint64_t seq)
{
    return ((uint64_t)p << 40 | seq) + 1;
}

hm_idtext hm_id_text(uint64_t stored)
{
    hm_idtext t;
    uint64_t id = (stored & ID_MASK) - 1;
    snprintf(t.s, sizeof t.s, "p%u-%" PRIu64, (unsigned)(id >> 40), id & ((UINT64_C(1) << 40) - 1));
    return t;
}

int hm_parse_value(const uint8_t *s, size_t n, unsigned *p, uint64_t *seq)
{
    if (n < 4 || n > 40 || s[0] != 'p')
        return -1;
    size_t i = 1;
    uint64_t a = 0, b = 0;
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        a = a * 10 + (uint64_t)(s[i++] - '0');
    if (i == start || i >= n || s[i] != '-' || a > MAX_PRODUCERS)
        return -1;
    start = ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        b = b * 10 + (uint64_t)(s[i++] - '0');
    if (i == start || i != n || b >= (UINT64_C(1) << 40))
        return -1;
    *p = (unsigned)a;
    *seq = b;
    return 0;
}

bool hm_key_sent_later(uint64_t stored)
{
    uint64_t id = (stored & ID_MASK) - 1;
    unsigned p = (unsigned)(id >> 40);
    uint64_t seq = id & ((UINT64_C(1) << 40) - 1);
    return p <= MAX_PRODUCERS && atomic_load(&hm_sent_seq[p]) > seq + HM_KEYS;
}

uint64_t hm_below_checked;

/* With --compact, an offset below the cursor may have been compacted away
 * before a member got it: only an acknowledged event whose key was not
 * sent again must have been delivered. */
static bool must_be_delivered(uint64_t o)
{
    if (!hm_opt.compact)
        return true;
    uint64_t e = __atomic_load_n(&hm_exp_at[o], __ATOMIC_RELAXED);
    return e != 0 && !hm_key_sent_later(e);
}

void hm_check_below_cursor(uint64_t *from, uint64_t cursor, const char *when)
{
    hm_check_run[C_BELOW_CURSOR] = true;
    for (uint64_t o = *from; o < cursor && o < hm_cap; o++)
        if (__atomic_load_n(&hm_deliv[o], __ATOMIC_SEQ_CST) == 0 && must_be_delivered(o))
            hm_fail(C_BELOW_CURSOR,
                    "%s: offset %" PRIu64 " is below the cursor %" PRIu64
                    " and was never delivered",
                    when, o, cursor);
    if (cursor > *from)
        *from = cursor;
}

/* ---- final verification ---- */

/* Per producer, the seq of the last event of each of its keys in the
 * stream (plus one; 0 = none): with --compact, what overwrote the rest. */
static uint64_t (*last_seq)[HM_KEYS];

/* With --compact: was p's event seq overwritten by a later one of its key
 * that the stream holds? */
static bool overwritten(unsigned p, uint64_t seq)
{
    return hm_opt.compact && last_seq[p][seq % HM_KEYS] > seq + 1;
}

/* Acknowledged events the stream (read up to `end`) lacks: lost, unless
 * a later event of their key is there (compaction took them). */
static void check_acked_present(uint64_t *const seen[], uint64_t end)
{
    for (uint64_t o = 0; o < end && o < hm_cap; o++) {
        uint64_t e = hm_exp_at[o];
        if (e == 0)
            continue;
        uint64_t id = (e & ID_MASK) - 1;
        unsigned p = (unsigned)(id >> 40);
        uint64_t seq = id & ((UINT64_C(1) << 40) - 1);
        if (p > (unsigned)hm_opt.producers || (seen[p][seq / 64] >> (seq % 64) & 1) ||
            overwritten(p, seq))
            continue;
        hm_fail(C_ACKED,
                "offset %" PRIu64 " was acknowledged (%s) and is not in the stream, nor a later "
                "event of its key k%u-%" PRIu64,
                o, hm_id_text(e).s, p, seq % HM_KEYS);
    }
}

/* With --compact: GET of every key gives the last event of the key in the
 * stream (the invariant: a replay from the first offset yields each live
 * key's latest event as GET returns it). */
static void check_latest(krappy_client *c)
{
    hm_check_run[C_LATEST] = true;
    for (int p = 0; p <= hm_opt.producers; p++) {
        for (unsigned r = 0; r < HM_KEYS; r++) {
            if (last_seq[p][r] == 0)
                continue;
            char key[32], want[48];
            int kl = snprintf(key, sizeof key, "k%d-%u", p, r);
            snprintf(want, sizeof want, "p%d-%" PRIu64, p, last_seq[p][r] - 1);
            krappy_value *v = NULL;
            const char *t;
            size_t tl;
            krappy_err e = krappy_get(c, hm_topic, key, (size_t)kl, &v);
            if (e != KRAPPY_OK)
                hm_fail(C_LATEST, "GET %s: %s", key, krappy_client_errmsg(c));
            else if (krappy_cbor_text(v->value, v->value_len, &t, &tl) != 1 || tl != strlen(want) ||
                     memcmp(t, want, tl) != 0)
                hm_fail(C_LATEST, "GET %s gives offset %" PRIu64 ", not the stream's last %s", key,
                        v->offset, want);
            krappy_value_free(v);
        }
    }
}

int hm_verify_stream(hm_verify_result *vr)
{
    hm_check_run[C_ACKED] = hm_check_run[C_STREAM] = hm_check_run[C_DELIVERY] = true;
    hm_check_run[C_DRAINED] = true;
    pthread_mutex_lock(&hm_srv_mu);
    e2e_server s = hm_srv;
    pthread_mutex_unlock(&hm_srv_mu);
    krappy_opts o = {.timeout_ms = 60000};
    krappy_client *c = krappy_client_new(&o);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK) {
        hm_fail(C_STREAM, "cannot connect to read the stream: %s", krappy_client_errmsg(c));
        krappy_client_free(c);
        return -1;
    }
    /* One bit per sent payload, per producer. */
    uint64_t *seen[MAX_PRODUCERS + 1] = {0};
    for (int p = 0; p <= hm_opt.producers; p++) {
        uint64_t n = atomic_load(&hm_sent_seq[p]);
        seen[p] = calloc(n / 64 + 1, sizeof(uint64_t));
        if (seen[p] == NULL)
            abort();
    }
    last_seq = calloc((size_t)hm_opt.producers + 1, sizeof *last_seq);
    if (last_seq == NULL)
        abort();
    uint64_t off = 0, events = 0, stream_next = 0;
    for (;;) {
        krappy_events *ev = NULL;
        krappy_err e = krappy_fetch(c, hm_topic, off, 10000, 8u << 20, 0, &ev);
        if (e != KRAPPY_OK) {
            hm_fail(C_STREAM, "FETCH at %" PRIu64 ": %s", off, krappy_client_errmsg(c));
            break;
        }
        if (ev->count == 0) {
            stream_next = ev->next;
            krappy_events_free(ev);
            break;
        }
        if (off / 1000000 != (off + ev->count) / 1000000)
            hm_say("verify: %" PRIu64 " events read", off + ev->count);
        for (size_t i = 0; i < ev->count; i++) {
            const krappy_event *x = &ev->events[i];
            if (hm_opt.compact ? x->offset < off : x->offset != off)
                hm_fail(C_STREAM, "event at offset %" PRIu64 " where %s%" PRIu64 " was due",
                        x->offset, hm_opt.compact ? "at least " : "", off);
            off = x->offset + 1;
            events++;
            if (x->offset >= hm_cap) {
                hm_fail(C_STREAM, "offset %" PRIu64 " beyond the records", x->offset);
                continue;
            }
            if (hm_deliv[x->offset] == 0)
                hm_fail(C_DRAINED, "offset %" PRIu64 " was never delivered", x->offset);
            const char *t;
            size_t tl;
            unsigned p;
            uint64_t seq;
            if (krappy_cbor_text(x->value, x->value_len, &t, &tl) != 1 ||
                hm_parse_value((const uint8_t *)t, tl, &p, &seq) < 0 ||
                p > (unsigned)hm_opt.producers) {
                hm_fail(C_STREAM, "offset %" PRIu64 " holds a value that is not one of ours",
                        x->offset);
                continue;
            }
            if (seq >= atomic_load(&hm_sent_seq[p])) {
                hm_fail(C_STREAM, "offset %" PRIu64 " holds p%u-%" PRIu64 ", never sent", x->offset,
                        p, seq);
                continue;
            }
            if (seen[p][seq / 64] >> (seq % 64) & 1)
                hm_fail(C_STREAM, "offset %" PRIu64 " holds p%u-%" PRIu64 " a second time",
                        x->offset, p, seq);
            seen[p][seq / 64] |= UINT64_C(1) << (seq % 64);
            if (hm_opt.compact && last_seq[p][seq % HM_KEYS] > seq + 1)
                hm_fail(C_STREAM,
                        "offset %" PRIu64 " holds p%u-%" PRIu64 " after p%u-%" PRIu64
                        " of the same key",
                        x->offset, p, seq, p, last_seq[p][seq % HM_KEYS] - 1);
            last_seq[p][seq % HM_KEYS] = seq + 1;
            uint64_t id = hm_pack_id(p, seq);
            uint64_t want = hm_exp_at[x->offset];
            if (want != 0 && (want & ID_MASK) != id)
                hm_fail(C_ACKED,
                        "offset %" PRIu64 " was acknowledged for %s but holds p%u-%" PRIu64,
                        x->offset, hm_id_text(want).s, p, seq);
            if (hm_dval[x->offset] != 0 && hm_dval[x->offset] != id)
                hm_fail(C_DELIVERY,
                        "offset %" PRIu64 " holds p%u-%" PRIu64 " but was delivered as %s",
                        x->offset, p, seq, hm_id_text(hm_dval[x->offset]).s);
        }
        krappy_events_free(ev);
    }
    if (stream_next != off && !hm_check_fail[C_STREAM])
        hm_fail(C_STREAM, "FETCH ended at %" PRIu64 " but says next %" PRIu64, off, stream_next);
    /* Acknowledged events beyond the end: lost. */
    uint64_t hi = atomic_load(&hm_acked_hi);
    for (uint64_t x = off; x < hi && x < hm_cap; x++) {
        if (hm_exp_at[x] != 0)
            hm_fail(C_ACKED,
                    "offset %" PRIu64
                    " was acknowledged (%s, %s) and is not in the stream (its end "
                    "is %" PRIu64 ")",
                    x, hm_exp_at[x] >> 60 == MODE_SYNC ? "sync" : "write",
                    hm_id_text(hm_exp_at[x]).s, off);
        if (hm_deliv[x] != 0)
            hm_fail(C_DELIVERY, "offset %" PRIu64 " was delivered and is not in the stream", x);
    }
    if (hm_opt.compact) {
        check_acked_present(seen, off);
        check_latest(c);
    }
    /* Check 9: nothing an idempotent producer sent is missing (check 4
     * already says nothing is there twice; with --compact, but what a
     * later event of its key overwrote). */
    for (int p = 0; hm_opt.idempotent && p < hm_opt.producers; p++) {
        if (!atomic_load(&hm_all_acked[p]))
            continue;
        hm_check_run[C_EXACTLY_ONCE] = true;
        uint64_t n = atomic_load(&hm_sent_seq[p]);
        for (uint64_t q = 0; q < n; q++)
            if (!(seen[p][q / 64] >> (q % 64) & 1) && !overwritten((unsigned)p, q))
                hm_fail(C_EXACTLY_ONCE, "p%d-%" PRIu64 " was sent and is not in the stream", p, q);
    }
    for (int p = 0; p <= hm_opt.producers; p++)
        free(seen[p]);
    free(last_seq);
    last_seq = NULL;
    krappy_client_free(c);
    vr->events = events;
    vr->next = off;
    return 0;
}
