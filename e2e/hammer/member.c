/*
 * e2e/hammer/member.c - the members of e2e/hammer's consumer group: long
 * POLLs with the next ACK pipelined in front, acknowledging by `upto` or by
 * `offsets`, sometimes late, sometimes never, and crashing at random (see
 * member_crash). Every delivery is recorded by offset.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "hammer.h"
#include "krappy/protocol.h"
#include "util/buf.h"
#include "proto/cbor.h"
#include "proto/msg.h"

typedef struct member {
    unsigned idx, incarnation;
    char name[64], who[80];
    hm_rng r;
    krappy_client *c;
    kr_buf b;
    unsigned long gen;
    bool up;
    uint64_t *held; /* offsets received and not yet acknowledged */
    size_t nheld, capheld;
    uint64_t no_upto_until; /* ms: a take-over may have brought unseen events */
    uint64_t next_crash;
    uint64_t next_abandon; /* ms: not before (a forgotten event holds the cursor) */
    /* Offsets kept past ack_wait_ms on purpose, then acknowledged by offset:
     * redelivered meanwhile, the late ACK still counts (or is `ignored` once
     * another member acknowledged them). Dropped when the server was
     * killed since (the new one may not have handed them out yet). */
    struct {
        uint64_t off, due;
        unsigned long gen;
    } late[8];
    size_t nlate;
} member;

static void member_name(member *m)
{
    if (m->incarnation == 0)
        snprintf(m->name, sizeof m->name, "m%u", m->idx);
    else
        snprintf(m->name, sizeof m->name, "m%u.%u", m->idx, m->incarnation);
    snprintf(m->who, sizeof m->who, "member %s", m->name);
}

static void schedule_crash(member *m)
{
    if (hm_opt.crash_every_ms <= 0)
        m->next_crash = UINT64_MAX;
    else
        m->next_crash = e2e_now_ms() + (uint64_t)hm_opt.crash_every_ms / 2 +
                        hm_rnd(&m->r) % (uint64_t)hm_opt.crash_every_ms;
}

static void hold(member *m, uint64_t o)
{
    if (m->nheld == m->capheld) {
        m->capheld = m->capheld ? m->capheld * 2 : 1024;
        m->held = realloc(m->held, m->capheld * sizeof *m->held);
        if (m->held == NULL)
            abort();
    }
    m->held[m->nheld++] = o;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Register on a fresh connection. @return 0, or -1 (try again). */
static int member_join(member *m)
{
    if (hm_connect_retry(m->c, &m->gen) < 0)
        return -1;
    kr_buf_reset(&m->b);
    kr_enc_consumer_register(&m->b, (kr_cid){0}, hm_topic, GROUP, m->name, KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, (uint64_t)hm_opt.ack_wait_ms);
    krappy_frame f;
    krappy_err e = krappy_call(m->c, KRAPPY_T_CONSUMER_REGISTER, m->b.data, m->b.len, &f);
    if (e > KRAPPY_E_WIRE_MAX) {
        hm_lost(m->c, m->gen, m->who, "CONSUMER_REGISTER");
        return -1;
    }
    if (e != KRAPPY_OK) {
        hm_fail(C_ERRORS, "%s: CONSUMER_REGISTER: %s", m->who, krappy_client_errmsg(m->c));
        krappy_close(m->c);
        hm_sleep_ms(100);
        return -1;
    }
    m->up = true;
    m->nheld = 0;
    return 0;
}

/*
 * Crash: close the connection without acknowledging what it holds -
 * sometimes with a POLL in flight (the server may hand out events nobody
 * reads), sometimes with a reset instead of a FIN. Come back under the same
 * name (which may take over the dead connection's pending events, so no
 * `upto` until they can have expired) or a new one.
 */
static void member_crash(member *m)
{
    uint64_t how = hm_rnd(&m->r);
    if (how & 1) {
        kr_buf_reset(&m->b);
        kr_enc_poll(&m->b, (kr_cid){0}, (uint64_t)hm_opt.poll_max, POLL_WAIT_MS, POLL_MAX_BYTES);
        (void)krappy_send(m->c, KRAPPY_T_POLL, m->b.data, m->b.len);
        (void)krappy_flush(m->c);
        if (how & 4)
            hm_sleep_ms((unsigned)(how >> 8) % 5);
    }
    if (how & 2) {
        struct linger l = {1, 0};
        int fd = krappy_client_fd(m->c);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    krappy_close(m->c);
    m->up = false;
    m->nheld = 0;
    atomic_fetch_add(&hm_st.crashes, 1);
    if (how & 8) {
        m->incarnation++;
        member_name(m);
    } else {
        /* The ack_wait_ms of a taken-over event runs "to within one second". */
        m->no_upto_until = e2e_now_ms() + (uint64_t)hm_opt.ack_wait_ms + 2500;
        atomic_fetch_add(&hm_st.takeovers_risked, 1);
    }
    schedule_crash(m);
}

/* Choose what to acknowledge now; encode it into m->b.
 * @return 1 when an ACK was encoded, 0 for none. */
static int member_build_ack(member *m, bool *by_upto, size_t *named)
{
    bool drain = atomic_load(&hm_draining), late_due = false;
    uint64_t now = e2e_now_ms();
    size_t k = 0;
    for (size_t i = 0; i < m->nlate; i++) {
        if (m->late[i].gen != m->gen)
            continue;
        if (drain || now >= m->late[i].due) {
            hold(m, m->late[i].off);
            late_due = true;
        } else {
            m->late[k++] = m->late[i];
        }
    }
    m->nlate = k;
    if (m->nheld == 0)
        return 0;
    bool upto_ok = now >= m->no_upto_until && !late_due;
    unsigned roll = (unsigned)(hm_rnd(&m->r) % 100);
    kr_buf_reset(&m->b);
    *by_upto = false;
    if (upto_ok && roll < (drain ? 50u : 35u)) {
        uint64_t hi = 0;
        for (size_t i = 0; i < m->nheld; i++)
            hi = m->held[i] > hi ? m->held[i] : hi;
        kr_enc_ack_upto(&m->b, (kr_cid){0}, hi + 1);
        *named = m->nheld;
        *by_upto = true;
        m->nheld = 0;
        return 1;
    }
    qsort(m->held, m->nheld, sizeof *m->held, cmp_u64);
    size_t n = 0;
    for (size_t i = 0; i < m->nheld; i++) /* unique */
        if (n == 0 || m->held[n - 1] != m->held[i])
            m->held[n++] = m->held[i];
    m->nheld = n;
    if (!drain && !late_due && roll >= 98 && now >= m->next_abandon) {
        /* Forget a few without acknowledging (expiry must redeliver them),
         * or keep them for a late ACK. Each holds the cursor back for
         * ack_wait_ms, so not too often. */
        m->next_abandon = now + (uint64_t)hm_opt.ack_wait_ms * (2 + hm_rnd(&m->r) % 4);
        size_t forget = 1 + hm_rnd(&m->r) % 3;
        bool make_late = hm_rnd(&m->r) & 1;
        for (size_t i = 0; i < forget && m->nheld > 0; i++) {
            size_t j = hm_rnd(&m->r) % m->nheld;
            uint64_t o = m->held[j];
            m->held[j] = m->held[--m->nheld];
            if (make_late && m->nlate < sizeof m->late / sizeof m->late[0]) {
                m->late[m->nlate].off = o;
                m->late[m->nlate].due =
                    now + (uint64_t)hm_opt.ack_wait_ms + 1500 + hm_rnd(&m->r) % 1000;
                m->late[m->nlate++].gen = m->gen;
                atomic_fetch_add(&hm_st.late, 1);
            } else {
                atomic_fetch_add(&hm_st.abandoned, 1);
            }
        }
        qsort(m->held, m->nheld, sizeof *m->held, cmp_u64);
    } else if (!drain && !late_due && roll >= 90) {
        return 0; /* later (a late ACK, perhaps after a redelivery) */
    } else if (!drain && !late_due && roll >= 75 && m->nheld > 1) {
        /* Half now, in random order of choice, the rest later. */
        uint64_t *now_ = malloc(m->nheld * sizeof *now_);
        size_t a = 0, keep = 0;
        if (now_ == NULL)
            abort();
        for (size_t i = 0; i < m->nheld; i++) {
            if (hm_rnd(&m->r) & 1)
                now_[a++] = m->held[i];
            else
                m->held[keep++] = m->held[i];
        }
        m->nheld = keep;
        if (a > 0)
            kr_enc_ack_offsets(&m->b, (kr_cid){0}, now_, a);
        free(now_);
        *named = a;
        return a > 0;
    }
    if (m->nheld == 0)
        return 0;
    kr_enc_ack_offsets(&m->b, (kr_cid){0}, m->held, m->nheld);
    *named = m->nheld;
    m->nheld = 0;
    return 1;
}

/* Record the events of one EVENTS reply. @return 0, -1 when malformed. */
static int member_take(member *m, const krappy_frame *f)
{
    kr_reply rep;
    kr_cbor_item evs, e;
    uint64_t next;
    if (kr_reply_decode(f->type, f->payload, f->len, &rep) < 0 ||
        kr_cbor_map_find(&rep.map, "events", &evs) != 1 || evs.kind != KR_CBOR_ARRAY ||
        kr_reply_uint(&rep, "next", &next) != 1) {
        hm_fail(C_DELIVERY, "%s: malformed EVENTS reply", m->who);
        return -1;
    }
    atomic_fetch_add(&hm_st.polls, 1);
    pthread_rwlock_rdlock(&hm_rec_lock);
    if (atomic_load(&hm_srv_gen) != m->gen) {
        /* From a server since killed: never acknowledged, not recorded. */
        pthread_rwlock_unlock(&hm_rec_lock);
        return 0;
    }
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &evs);
    while (kr_cbor_iter_next(&it, &e) == 1) {
        kr_event_view v;
        unsigned p;
        uint64_t seq;
        if (kr_event_view_read(&e, &v) < 0) {
            hm_fail(C_DELIVERY, "%s: a malformed event in EVENTS", m->who);
            continue;
        }
        uint64_t o = v.offset;
        if (o >= hm_cap) {
            hm_fail(C_DELIVERY, "%s: offset %" PRIu64 " beyond the records", m->who, o);
            continue;
        }
        if (o >= next)
            hm_fail(C_DELIVERY, "%s: offset %" PRIu64 " delivered with next %" PRIu64, m->who, o,
                    next);
        if (__atomic_fetch_add(&hm_deliv[o], 1, __ATOMIC_SEQ_CST) > 0)
            atomic_fetch_add(&hm_st.redeliveries, 1);
        atomic_fetch_add(&hm_st.deliveries, 1);
        if (v.value.kind != KR_CBOR_TEXT || v.value.str == NULL ||
            hm_parse_value(v.value.str, v.value.str_len, &p, &seq) < 0) {
            hm_fail(C_DELIVERY, "%s: offset %" PRIu64 " delivered with a value not of ours", m->who,
                    o);
        } else {
            uint64_t id = hm_pack_id(p, seq), seen = 0;
            if (!__atomic_compare_exchange_n(&hm_dval[o], &seen, id, false, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST) &&
                seen != id)
                hm_fail(C_DELIVERY,
                        "%s: offset %" PRIu64 " delivered as p%u-%" PRIu64 ", earlier as %s",
                        m->who, o, p, seq, hm_id_text(seen).s);
        }
        hold(m, o);
    }
    pthread_rwlock_unlock(&hm_rec_lock);
    return 0;
}

/* Handle a reply that is an ERROR, or a lost connection.
 * @return 0 when the reply is usable, -1 when the connection was dropped. */
static int member_reply(member *m, krappy_err e, const krappy_frame *f, const char *what)
{
    if (e != KRAPPY_OK) {
        hm_lost(m->c, m->gen, m->who, what);
        m->up = false;
        return -1;
    }
    if (f->type == KRAPPY_T_ERROR) {
        (void)krappy_reply_error(m->c, f);
        hm_fail(C_ERRORS, "%s: %s: %s", m->who, what, krappy_client_errmsg(m->c));
        krappy_close(m->c);
        m->up = false;
        return -1;
    }
    return 0;
}

static void *member_main(void *arg)
{
    member *m = arg;
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    m->c = krappy_client_new(&o);
    if (m->c == NULL)
        abort();
    kr_buf_init(&m->b, 64u << 20);
    member_name(m);
    schedule_crash(m);
    while (!atomic_load(&hm_stop_members) && !atomic_load(&hm_aborting)) {
        if (!m->up) {
            if (member_join(m) < 0)
                continue;
            atomic_fetch_add(&hm_st.reconnects, 1);
        }
        if (!atomic_load(&hm_draining) && e2e_now_ms() >= m->next_crash) {
            member_crash(m);
            continue;
        }
        bool by_upto = false;
        size_t named = 0;
        int acking = member_build_ack(m, &by_upto, &named);
        if (acking && krappy_send(m->c, KRAPPY_T_ACK, m->b.data, m->b.len) != KRAPPY_OK) {
            member_reply(m, KRAPPY_E_CLOSED, NULL, "ACK send");
            continue;
        }
        kr_buf_reset(&m->b);
        kr_enc_poll(&m->b, (kr_cid){0}, (uint64_t)hm_opt.poll_max, POLL_WAIT_MS, POLL_MAX_BYTES);
        if (krappy_send(m->c, KRAPPY_T_POLL, m->b.data, m->b.len) != KRAPPY_OK) {
            member_reply(m, KRAPPY_E_CLOSED, NULL, "POLL send");
            continue;
        }
        krappy_frame f;
        if (acking) {
            krappy_err e = krappy_recv(m->c, &f);
            if (member_reply(m, e, &f, "ACK") < 0)
                continue;
            kr_reply rep;
            uint64_t cur;
            kr_cbor_item ign;
            if (kr_reply_decode(f.type, f.payload, f.len, &rep) < 0 ||
                kr_reply_uint(&rep, "cursor", &cur) != 1) {
                hm_fail(C_ERRORS, "%s: malformed ACK reply", m->who);
            } else {
                if (atomic_load(&hm_srv_gen) == m->gen)
                    hm_atomic_max(&hm_ack_cursor_max, cur);
                if (kr_cbor_map_find(&rep.map, "ignored", &ign) == 1 && ign.kind == KR_CBOR_ARRAY)
                    atomic_fetch_add(&hm_st.ignored, ign.u);
            }
            atomic_fetch_add(by_upto ? &hm_st.acks_upto : &hm_st.acks_offsets, 1);
            atomic_fetch_add(&hm_st.acked_named, named);
        }
        krappy_err e = krappy_recv(m->c, &f);
        if (member_reply(m, e, &f, "POLL") < 0)
            continue;
        if (f.type != KRAPPY_T_EVENTS) {
            hm_fail(C_ERRORS, "%s: POLL answered with frame type %u", m->who, f.type);
            continue;
        }
        (void)member_take(m, &f);
    }
    krappy_client_free(m->c);
    kr_buf_free(&m->b);
    free(m->held);
    return NULL;
}

static pthread_t threads[MAX_MEMBERS];
static member *members;

void hm_members_start(void)
{
    members = calloc((size_t)hm_opt.members, sizeof *members);
    if (members == NULL)
        abort();
    for (int i = 0; i < hm_opt.members; i++) {
        members[i].idx = (unsigned)i;
        hm_rng_seed(&members[i].r, hm_opt.seed, (uint64_t)i);
        pthread_create(&threads[i], NULL, member_main, &members[i]);
    }
}

void hm_members_join(void)
{
    for (int i = 0; i < hm_opt.members; i++)
        pthread_join(threads[i], NULL);
    free(members);
    members = NULL;
}
