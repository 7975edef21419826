/*
 * e2e/hammer.c - load and correctness tool for consumer groups.
 *
 * One process, one thread per connection, everything on 127.0.0.1, bounded
 * in time and in count; it stops by itself. N producers publish batches of
 * verifiable events (value "p<producer>-<seq>", each seq sent once) with ack
 * "sync" (or a share with "write"); M members of one consumer group (explicit
 * acks, short ack_wait_ms) POLL with long polls, pipelining each ACK with the
 * next POLL, acknowledging by `upto` or by `offsets`, sometimes late,
 * sometimes never (so that expiry redelivers). Members crash at random: the
 * connection is closed abruptly (sometimes with a POLL in flight, sometimes
 * with a reset), and the member comes back under its name or a new one. With
 * --kills the server is killed with SIGKILL at random moments and restarted
 * on the same data; clients reconnect, register again and go on.
 *
 * Every event handed to a member is recorded by offset (how many times, and
 * its payload); every PUBLISH acknowledgement by offset. At the end the
 * members drain the group (until its lag is 0) and the whole stream is read
 * with FETCH. The checks:
 *   1 every event acknowledged "sync" (and "write", without power cuts) is in
 *     the stream at its offset with its payload;
 *   2 every event below the group's cursor was delivered to some member
 *     (checked after every restart and at the end of the load);
 *   3 after draining, every event of the stream was delivered, and the
 *     group's cursor is the stream's end with nothing pending;
 *   4 the stream's offsets are contiguous from 0 and every payload is one
 *     that was sent, at most once;
 *   5 deliveries carried the stored payload, below the reply's `next`;
 *   6 the group's cursor after a kill -9 is at least every cursor an ACK's
 *     OK reported before it (only with --kills);
 *   7 no unexpected server error (or lost connection, or timeout);
 *   8 the server never died by itself (if it does, the end of its log - a
 *     sanitizer's report - is shown and it is restarted so that the other
 *     checks still run) and stops cleanly at the end (exit status 0).
 * A watchdog ends a run that hangs. On a failure the server's directory
 * (data and log) is kept and named.
 *
 * Uses $KRAPPYD (default bin/krappyd) in a temp dir through e2e/harness, or
 * the running server at $KRAPPY_E2E_ADDR (then no kills). --powercut runs
 * the server under the shim ($KRAPPY_SHIM, $KRAPPY_POWERCUT) and turns each
 * kill into a power cut (kill -9, then the files cut back to what was made
 * durable); the server then gets --fsync-cursors.
 *
 * Exit status: 0 when every check passed, 1 when one failed, 2 for usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "krappy/client.h"
#include "proto/cbor.h"
#include "proto/msg.h"

#define GROUP           "hammer"
#define MAX_PRODUCERS   256
#define MAX_MEMBERS     256
#define MAX_INFLIGHT    64
#define POLL_WAIT_MS    250
#define POLL_MAX_BYTES  (4u << 20)
#define CLIENT_TIMEOUT  20000 /* ms; a server silent this long is a failure */
#define RECONNECT_LIMIT 60000 /* ms to get a server back */
#define NOTE_LIMIT      10    /* messages printed per check */

/* ---- options ---- */

static struct {
    int producers, members, kills, batch, crash_every_ms, sync_pct, ack_wait_ms, poll_max;
    int inflight, drain_s;
    double seconds;
    uint64_t seed, max_events, prefill, max_lag;
    bool powercut, verbose;
} opt = {
    .producers = 2,
    .members = 3,
    .kills = 0,
    .batch = 50,
    .crash_every_ms = 1500,
    .sync_pct = 100,
    .ack_wait_ms = 1000,
    .poll_max = 500,
    .inflight = 4,
    .drain_s = 60,
    .seconds = 5,
    .max_events = 20000000,
    .max_lag = 200000,
};

/* ---- checks ---- */

enum {
    C_ACKED,
    C_BELOW_CURSOR,
    C_DRAINED,
    C_STREAM,
    C_DELIVERY,
    C_CURSOR_DURABLE,
    C_ERRORS,
    C_EXIT,
    C_N
};

static const char *const check_name[C_N] = {
    [C_ACKED] = "acknowledged events stored with their payload",
    [C_BELOW_CURSOR] = "events below the group cursor were delivered",
    [C_DRAINED] = "after draining: every event delivered, lag 0",
    [C_STREAM] = "offsets contiguous, payloads sent once",
    [C_DELIVERY] = "deliveries carried the stored payload",
    [C_CURSOR_DURABLE] = "group cursor survives kill -9",
    [C_ERRORS] = "no unexpected server error",
    [C_EXIT] = "server never crashed, stopped cleanly",
};

static atomic_ulong check_fail[C_N];
static bool check_run[C_N];

__attribute__((format(printf, 2, 3))) static void fail(int check, const char *fmt, ...)
{
    unsigned long n = atomic_fetch_add(&check_fail[check], 1);
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

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    if (!opt.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hammer: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- counters ---- */

static struct {
    atomic_ulong sent, acked_sync, acked_write, uncertain, batches, prod_reconnects;
    atomic_ulong deliveries, redeliveries, polls, acks_upto, acks_offsets, acked_named, ignored;
    atomic_ulong crashes, reconnects, abandoned, late, takeovers_risked;
} st;

/* Highest offset+1 acknowledged to a producer; highest cursor an ACK's OK
 * reported. */
static atomic_ulong acked_hi, ack_cursor_max;

static atomic_int stop_produce, stop_members, draining, aborting;

/* ---- per-offset records (anonymous memory, touched as used) ---- */

/*
 * exp_at[o]: what a PUBLISH acknowledgement said is at offset o: mode << 60
 *            | producer << 40 | seq, plus 1 in the low part; 0 = nothing.
 * dval[o]:   the payload first delivered at o (id + 1), 0 = none yet.
 * deliv[o]:  deliveries of o to members.
 */
#define ID_MASK   ((UINT64_C(1) << 60) - 1)
#define MODE_SYNC UINT64_C(2)
#define MODE_WRIT UINT64_C(1)

static uint64_t *exp_at, *dval;
static uint32_t *deliv;
static uint64_t cap; /* offsets < cap can be recorded */
static atomic_ulong sent_seq[MAX_PRODUCERS + 1];

static uint64_t pack_id(unsigned p, uint64_t seq)
{
    return ((uint64_t)p << 40 | seq) + 1;
}

/* "p<P>-<seq>" of a packed id (as stored: plus 1, mode bits ignored). */
typedef struct idtext {
    char s[40];
} idtext;

static idtext id_text(uint64_t stored)
{
    idtext t;
    uint64_t id = (stored & ID_MASK) - 1;
    snprintf(t.s, sizeof t.s, "p%u-%" PRIu64, (unsigned)(id >> 40), id & ((UINT64_C(1) << 40) - 1));
    return t;
}

static void *map_zero(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Parse "p<P>-<seq>" exactly. @return 0 or -1. */
static int parse_value(const uint8_t *s, size_t n, unsigned *p, uint64_t *seq)
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

/* ---- random numbers (xorshift64*) ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    r->s = (seed + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ (stream + 1) * UINT64_C(0xD1B54A32D192ED03);
    if (r->s == 0)
        r->s = 1;
    for (int i = 0; i < 4; i++)
        (void)rnd(r);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void atomic_max(atomic_ulong *a, uint64_t v)
{
    unsigned long cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, (unsigned long)v))
        ;
}

/* ---- the server ---- */

static char topic[128] = "hammer";
static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static e2e_server srv;       /* host/port read under srv_mu */
static bool srv_up;          /* under srv_mu: the address may be used */
static atomic_ulong srv_gen; /* incremented before each kill */
static bool own_server;
static const char *server_args[24];

/* Members record a batch of deliveries under the read side; a power cut
 * resets the records above the surviving stream under the write side. */
static pthread_rwlock_t rec_lock = PTHREAD_RWLOCK_INITIALIZER;

static bool get_addr(char *host, size_t hl, char *port, size_t pl)
{
    pthread_mutex_lock(&srv_mu);
    bool up = srv_up;
    snprintf(host, hl, "%s", srv.host);
    snprintf(port, pl, "%s", srv.port);
    pthread_mutex_unlock(&srv_mu);
    return up;
}

/* Connect to the current server, waiting while it is down.
 * @return 0, or -1 when aborting or it never came back. */
static int connect_retry(krappy_client *c, unsigned long *gen)
{
    uint64_t deadline = e2e_now_ms() + RECONNECT_LIMIT;
    for (;;) {
        if (atomic_load(&aborting))
            return -1;
        char host[64], port[16];
        *gen = atomic_load(&srv_gen);
        if (get_addr(host, sizeof host, port, sizeof port) &&
            krappy_connect(c, host, port) == KRAPPY_OK) {
            if (atomic_load(&srv_gen) == *gen)
                return 0; /* to the server of that generation */
            krappy_close(c);
        }
        if (e2e_now_ms() > deadline) {
            fail(C_ERRORS, "no server to connect to within %d s: %s", RECONNECT_LIMIT / 1000,
                 krappy_client_errmsg(c));
            atomic_store(&aborting, 1);
            return -1;
        }
        sleep_ms(2);
    }
}

/* A call failed locally (the connection is gone): expected only when the
 * server was killed since the connection was made. */
static void lost(krappy_client *c, unsigned long gen, const char *who, const char *what)
{
    if (atomic_load(&srv_gen) == gen && !atomic_load(&aborting))
        fail(C_ERRORS, "%s: %s: connection lost with no kill: %s", who, what,
             krappy_client_errmsg(c));
    krappy_close(c);
}

/* ---- producers ---- */

typedef struct inflight {
    uint64_t seq;
    uint32_t n;
    krappy_ack mode;
} inflight;

static void record_publish(unsigned p, const inflight *f, const krappy_publish_result *res)
{
    if (res->count != f->n) {
        fail(C_ACKED, "producer %u: PUBLISH of %u events acknowledged with count %" PRIu64, p, f->n,
             res->count);
        return;
    }
    uint64_t mode = f->mode == KRAPPY_ACK_SYNC ? MODE_SYNC : MODE_WRIT;
    atomic_fetch_add(f->mode == KRAPPY_ACK_SYNC ? &st.acked_sync : &st.acked_write, f->n);
    atomic_max(&acked_hi, res->first + res->count);
    if (opt.powercut && mode == MODE_WRIT)
        return; /* a power cut may take these */
    for (uint32_t i = 0; i < f->n; i++) {
        uint64_t o = res->first + i;
        if (o >= cap) {
            fail(C_ACKED, "offset %" PRIu64 " beyond the records (--max-events)", o);
            return;
        }
        uint64_t v = mode << 60 | pack_id(p, f->seq + i);
        uint64_t old = __atomic_exchange_n(&exp_at[o], v, __ATOMIC_RELAXED);
        if (old != 0)
            fail(C_ACKED, "offset %" PRIu64 " acknowledged twice (p%u-%" PRIu64 " after %s)", o, p,
                 f->seq + i, id_text(old).s);
    }
}

static void *producer_main(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    rng r;
    rng_seed(&r, opt.seed, 1000 + p);
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    krappy_client *c = krappy_client_new(&o);
    krappy_batch *b = krappy_batch_new();
    char who[32], text[48], key[32];
    snprintf(who, sizeof who, "hammer-p%u", p);
    inflight q[MAX_INFLIGHT];
    size_t qh = 0, qn = 0;
    uint64_t seq = 0;
    unsigned long gen = 0;
    bool up = false, budget_left = true;
    if (c == NULL || b == NULL)
        abort();
    for (;;) {
        bool stopping = atomic_load(&stop_produce) || !budget_left || atomic_load(&aborting);
        if (stopping && (!up || qn == 0))
            break;
        if (!up) {
            if (connect_retry(c, &gen) < 0)
                break;
            krappy_err e = krappy_register_producer(c, topic, who, NULL);
            if (e > KRAPPY_E_WIRE_MAX) {
                lost(c, gen, who, "PRODUCER_REGISTER");
                continue;
            }
            if (e != KRAPPY_OK) {
                fail(C_ERRORS, "%s: PRODUCER_REGISTER: %s", who, krappy_client_errmsg(c));
                krappy_close(c);
                sleep_ms(100);
                continue;
            }
            up = true;
        }
        bool throttled = atomic_load(&acked_hi) > atomic_load(&ack_cursor_max) + opt.max_lag;
        if (!stopping && !throttled && qn < (size_t)opt.inflight) {
            uint32_t n = (uint32_t)opt.batch;
            if (atomic_fetch_add(&st.sent, n) + n > opt.max_events) {
                atomic_fetch_sub(&st.sent, n);
                budget_left = false;
                continue;
            }
            krappy_batch_reset(b);
            for (uint32_t i = 0; i < n; i++) {
                int tl = snprintf(text, sizeof text, "p%u-%" PRIu64, p, seq + i);
                int kl = snprintf(key, sizeof key, "k%u-%" PRIu64, p, (seq + i) % 97);
                if (krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, (size_t)kl, text, (size_t)tl) !=
                    KRAPPY_OK)
                    abort();
            }
            krappy_ack mode =
                (int)(rnd(&r) % 100) < opt.sync_pct ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE;
            /* Counted as sent before it is: it may be stored either way. */
            atomic_store(&sent_seq[p], seq + n);
            krappy_err e = krappy_publish_send(c, b, mode, NULL);
            if (e != KRAPPY_OK) {
                atomic_fetch_add(&st.uncertain, n);
                seq += n;
                lost(c, gen, who, "PUBLISH send");
                goto connection_lost;
            }
            q[(qh + qn) % MAX_INFLIGHT] = (inflight){seq, n, mode};
            qn++;
            seq += n;
            atomic_fetch_add(&st.batches, 1);
            if (qn < (size_t)opt.inflight)
                continue;
        }
        if (qn == 0) {
            sleep_ms(1);
            continue;
        }
        krappy_publish_result res;
        krappy_err e = krappy_publish_recv(c, &res);
        inflight f = q[qh];
        if (e == KRAPPY_OK) {
            qh = (qh + 1) % MAX_INFLIGHT;
            qn--;
            record_publish(p, &f, &res);
            continue;
        }
        if (e <= KRAPPY_E_WIRE_MAX) {
            /* Refused: not stored. */
            qh = (qh + 1) % MAX_INFLIGHT;
            qn--;
            fail(C_ERRORS, "%s: PUBLISH refused: %s", who, krappy_client_errmsg(c));
            if (krappy_connected(c))
                continue;
            krappy_close(c);
        } else {
            lost(c, gen, who, "PUBLISH reply");
        }
    connection_lost:
        for (; qn > 0; qn--, qh = (qh + 1) % MAX_INFLIGHT)
            atomic_fetch_add(&st.uncertain, q[qh].n);
        up = false;
        atomic_fetch_add(&st.prod_reconnects, 1);
    }
    for (; qn > 0; qn--, qh = (qh + 1) % MAX_INFLIGHT)
        atomic_fetch_add(&st.uncertain, q[qh].n);
    krappy_batch_free(b);
    krappy_client_free(c);
    return NULL;
}

/* ---- members ---- */

typedef struct member {
    unsigned idx, incarnation;
    char name[64], who[80];
    rng r;
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
    if (opt.crash_every_ms <= 0)
        m->next_crash = UINT64_MAX;
    else
        m->next_crash = e2e_now_ms() + (uint64_t)opt.crash_every_ms / 2 +
                        rnd(&m->r) % (uint64_t)opt.crash_every_ms;
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
    if (connect_retry(m->c, &m->gen) < 0)
        return -1;
    kr_buf_reset(&m->b);
    kr_enc_consumer_register(&m->b, (kr_cid){0}, topic, GROUP, m->name, KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, (uint64_t)opt.ack_wait_ms);
    krappy_frame f;
    krappy_err e = krappy_call(m->c, KRAPPY_T_CONSUMER_REGISTER, m->b.data, m->b.len, &f);
    if (e > KRAPPY_E_WIRE_MAX) {
        lost(m->c, m->gen, m->who, "CONSUMER_REGISTER");
        return -1;
    }
    if (e != KRAPPY_OK) {
        fail(C_ERRORS, "%s: CONSUMER_REGISTER: %s", m->who, krappy_client_errmsg(m->c));
        krappy_close(m->c);
        sleep_ms(100);
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
    uint64_t how = rnd(&m->r);
    if (how & 1) {
        kr_buf_reset(&m->b);
        kr_enc_poll(&m->b, (kr_cid){0}, (uint64_t)opt.poll_max, POLL_WAIT_MS, POLL_MAX_BYTES);
        (void)krappy_send(m->c, KRAPPY_T_POLL, m->b.data, m->b.len);
        (void)krappy_flush(m->c);
        if (how & 4)
            sleep_ms((unsigned)(how >> 8) % 5);
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
    atomic_fetch_add(&st.crashes, 1);
    if (how & 8) {
        m->incarnation++;
        member_name(m);
    } else {
        /* The ack_wait_ms of a taken-over event runs "to within one second". */
        m->no_upto_until = e2e_now_ms() + (uint64_t)opt.ack_wait_ms + 2500;
        atomic_fetch_add(&st.takeovers_risked, 1);
    }
    schedule_crash(m);
}

/* Choose what to acknowledge now; encode it into m->b.
 * @return 1 when an ACK was encoded, 0 for none. */
static int member_build_ack(member *m, bool *by_upto, size_t *named)
{
    bool drain = atomic_load(&draining), late_due = false;
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
    unsigned roll = (unsigned)(rnd(&m->r) % 100);
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
        m->next_abandon = now + (uint64_t)opt.ack_wait_ms * (2 + rnd(&m->r) % 4);
        size_t forget = 1 + rnd(&m->r) % 3;
        bool make_late = rnd(&m->r) & 1;
        for (size_t i = 0; i < forget && m->nheld > 0; i++) {
            size_t j = rnd(&m->r) % m->nheld;
            uint64_t o = m->held[j];
            m->held[j] = m->held[--m->nheld];
            if (make_late && m->nlate < sizeof m->late / sizeof m->late[0]) {
                m->late[m->nlate].off = o;
                m->late[m->nlate].due = now + (uint64_t)opt.ack_wait_ms + 1500 + rnd(&m->r) % 1000;
                m->late[m->nlate++].gen = m->gen;
                atomic_fetch_add(&st.late, 1);
            } else {
                atomic_fetch_add(&st.abandoned, 1);
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
            if (rnd(&m->r) & 1)
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
        fail(C_DELIVERY, "%s: malformed EVENTS reply", m->who);
        return -1;
    }
    atomic_fetch_add(&st.polls, 1);
    pthread_rwlock_rdlock(&rec_lock);
    if (atomic_load(&srv_gen) != m->gen) {
        /* From a server since killed: never acknowledged, not recorded. */
        pthread_rwlock_unlock(&rec_lock);
        return 0;
    }
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &evs);
    while (kr_cbor_iter_next(&it, &e) == 1) {
        kr_event_view v;
        unsigned p;
        uint64_t seq;
        if (kr_event_view_read(&e, &v) < 0) {
            fail(C_DELIVERY, "%s: a malformed event in EVENTS", m->who);
            continue;
        }
        uint64_t o = v.offset;
        if (o >= cap) {
            fail(C_DELIVERY, "%s: offset %" PRIu64 " beyond the records", m->who, o);
            continue;
        }
        if (o >= next)
            fail(C_DELIVERY, "%s: offset %" PRIu64 " delivered with next %" PRIu64, m->who, o,
                 next);
        if (__atomic_fetch_add(&deliv[o], 1, __ATOMIC_SEQ_CST) > 0)
            atomic_fetch_add(&st.redeliveries, 1);
        atomic_fetch_add(&st.deliveries, 1);
        if (v.value.kind != KR_CBOR_TEXT || v.value.str == NULL ||
            parse_value(v.value.str, v.value.str_len, &p, &seq) < 0) {
            fail(C_DELIVERY, "%s: offset %" PRIu64 " delivered with a value not of ours", m->who,
                 o);
        } else {
            uint64_t id = pack_id(p, seq), seen = 0;
            if (!__atomic_compare_exchange_n(&dval[o], &seen, id, false, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST) &&
                seen != id)
                fail(C_DELIVERY,
                     "%s: offset %" PRIu64 " delivered as p%u-%" PRIu64 ", earlier as %s", m->who,
                     o, p, seq, id_text(seen).s);
        }
        hold(m, o);
    }
    pthread_rwlock_unlock(&rec_lock);
    return 0;
}

/* Handle a reply that is an ERROR, or a lost connection.
 * @return 0 when the reply is usable, -1 when the connection was dropped. */
static int member_reply(member *m, krappy_err e, const krappy_frame *f, const char *what)
{
    if (e != KRAPPY_OK) {
        lost(m->c, m->gen, m->who, what);
        m->up = false;
        return -1;
    }
    if (f->type == KRAPPY_T_ERROR) {
        (void)krappy_reply_error(m->c, f);
        fail(C_ERRORS, "%s: %s: %s", m->who, what, krappy_client_errmsg(m->c));
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
    while (!atomic_load(&stop_members) && !atomic_load(&aborting)) {
        if (!m->up) {
            if (member_join(m) < 0)
                continue;
            atomic_fetch_add(&st.reconnects, 1);
        }
        if (!atomic_load(&draining) && e2e_now_ms() >= m->next_crash) {
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
        kr_enc_poll(&m->b, (kr_cid){0}, (uint64_t)opt.poll_max, POLL_WAIT_MS, POLL_MAX_BYTES);
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
                fail(C_ERRORS, "%s: malformed ACK reply", m->who);
            } else {
                if (atomic_load(&srv_gen) == m->gen)
                    atomic_max(&ack_cursor_max, cur);
                if (kr_cbor_map_find(&rep.map, "ignored", &ign) == 1 && ign.kind == KR_CBOR_ARRAY)
                    atomic_fetch_add(&st.ignored, ign.u);
            }
            atomic_fetch_add(by_upto ? &st.acks_upto : &st.acks_offsets, 1);
            atomic_fetch_add(&st.acked_named, named);
        }
        krappy_err e = krappy_recv(m->c, &f);
        if (member_reply(m, e, &f, "POLL") < 0)
            continue;
        if (f.type != KRAPPY_T_EVENTS) {
            fail(C_ERRORS, "%s: POLL answered with frame type %u", m->who, f.type);
            continue;
        }
        (void)member_take(m, &f);
    }
    krappy_client_free(m->c);
    kr_buf_free(&m->b);
    free(m->held);
    return NULL;
}

/* ---- control: STATS, kills ---- */

typedef struct gstats {
    uint64_t next, cursor, pending, lag, members;
} gstats;

/* STATS of the topic and the group on the server at host:port.
 * @return 0, or -1 (message on stderr when not quiet). */
static int group_stats(const e2e_server *s, gstats *g, bool quiet)
{
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    krappy_client *c = krappy_client_new(&o);
    krappy_topic_stats *ts = NULL;
    int rc = -1;
    if (c == NULL)
        abort();
    if (krappy_connect(c, s->host, s->port) != KRAPPY_OK ||
        krappy_stats(c, topic, GROUP, &ts) != KRAPPY_OK || ts->n_groups != 1) {
        if (!quiet)
            fprintf(stderr, "hammer: STATS failed: %s\n", krappy_client_errmsg(c));
        goto out;
    }
    g->next = ts->next;
    g->cursor = ts->groups[0].cursor;
    g->pending = ts->groups[0].pending;
    g->lag = ts->groups[0].lag;
    g->members = ts->groups[0].members;
    rc = 0;
out:
    krappy_topic_stats_free(ts);
    krappy_client_free(c);
    return rc;
}

static int current_stats(gstats *g, bool quiet)
{
    pthread_mutex_lock(&srv_mu);
    e2e_server s = srv;
    pthread_mutex_unlock(&srv_mu);
    return group_stats(&s, g, quiet);
}

/* Check 2 on [*from, cursor): each offset was delivered at least once. */
static void check_below_cursor(uint64_t *from, uint64_t cursor, const char *when)
{
    check_run[C_BELOW_CURSOR] = true;
    for (uint64_t o = *from; o < cursor && o < cap; o++)
        if (__atomic_load_n(&deliv[o], __ATOMIC_SEQ_CST) == 0)
            fail(C_BELOW_CURSOR,
                 "%s: offset %" PRIu64 " is below the cursor %" PRIu64 " and was never delivered",
                 when, o, cursor);
    if (cursor > *from)
        *from = cursor;
}

static char shim_log[400];

static void shim_env(const e2e_server *s, bool on)
{
    if (!on) {
        e2e_shim_off();
        return;
    }
    e2e_shim_on(s);
    snprintf(shim_log, sizeof shim_log, "%s/shim.log", s->dir);
}

static int start_server(e2e_server *s)
{
    if (!opt.powercut)
        return e2e_start(s, server_args);
    memset(s, 0, sizeof *s);
    e2e_tmp_template(s->dir, sizeof s->dir);
    if (mkdtemp(s->dir) == NULL)
        return -1;
    shim_env(s, true);
    int rc = e2e_restart(s, server_args);
    shim_env(s, false);
    return rc;
}

static double restart_ms_total;
static int kills_done;
static uint64_t below_checked; /* check 2 done below this offset */

static int crashes_seen; /* the server died without being killed */

/*
 * kill -9 the server (and cut the power, with --powercut), restart it on
 * the same data, check what must have survived, then let clients at it.
 * With `dead`, the server has died by itself already (and was reaped).
 * @return 0, or -1 when the server does not come back.
 */
static int kill_and_restart(bool dead)
{
    pthread_mutex_lock(&srv_mu);
    srv_up = false;
    atomic_fetch_add(&srv_gen, 1);
    e2e_server s = srv;
    pthread_mutex_unlock(&srv_mu);
    uint64_t t0 = e2e_now_ms();
    if (!dead) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
    }
    /* Every OK read so far was sent before the kill. */
    uint64_t durable = atomic_load(&ack_cursor_max);
    if (opt.powercut) {
        char cmd[900], out[4096];
        snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/data' 2>&1", getenv("KRAPPY_POWERCUT"), shim_log,
                 s.dir);
        if (e2e_run(cmd, out, sizeof out) != 0) {
            fprintf(stderr, "hammer: powercut failed: %s\n", out);
            return -1;
        }
    }
    shim_env(&s, opt.powercut);
    int rc = e2e_restart(&s, server_args);
    shim_env(&s, false);
    if (rc < 0) {
        fprintf(stderr, "hammer: krappyd did not restart; log in %s\n", s.log_path);
        return -1;
    }
    char when[48];
    if (dead) {
        snprintf(when, sizeof when, "after crash %d", ++crashes_seen);
    } else {
        restart_ms_total += (double)(e2e_now_ms() - t0);
        kills_done++;
        snprintf(when, sizeof when, "after kill %d", kills_done);
    }
    gstats g;
    if (group_stats(&s, &g, false) < 0) {
        fail(C_ERRORS, "STATS %s failed", when);
    } else {
        check_run[C_CURSOR_DURABLE] = true;
        if (g.cursor < durable)
            fail(C_CURSOR_DURABLE,
                 "%s the cursor is %" PRIu64 ", below %" PRIu64 " that an ACK's OK reported", when,
                 g.cursor, durable);
        if (opt.powercut) {
            /* Events above the surviving stream are gone; their offsets
             * will be reused. Forget what members saw there. */
            pthread_rwlock_wrlock(&rec_lock);
            uint64_t hi = atomic_load(&acked_hi) + (uint64_t)opt.batch * 64;
            for (uint64_t o = g.next; o < hi && o < cap; o++) {
                dval[o] = 0;
                deliv[o] = 0;
            }
            pthread_rwlock_unlock(&rec_lock);
            if (g.cursor > g.next)
                fail(C_CURSOR_DURABLE,
                     "%s (power cut) the cursor %" PRIu64 " is beyond the stream's end %" PRIu64,
                     when, g.cursor, g.next);
        }
        check_below_cursor(&below_checked, g.cursor, when);
        say("%s: restarted in %" PRIu64 " ms, next %" PRIu64 ", cursor %" PRIu64 " (>= %" PRIu64
            ")",
            when, e2e_now_ms() - t0, g.next, g.cursor, durable);
    }
    pthread_mutex_lock(&srv_mu);
    srv = s;
    srv_up = true;
    pthread_mutex_unlock(&srv_mu);
    return 0;
}

/*
 * A server that died without being killed is a failure: say how, show the
 * end of its log (a sanitizer's report), and restart it so that the run
 * can still check what survived. @return 0, or -1 when it stays down.
 */
static int watch_server(void)
{
    if (!own_server)
        return 0;
    int status;
    pthread_mutex_lock(&srv_mu);
    pid_t pid = srv.pid;
    char log[300];
    snprintf(log, sizeof log, "%s", srv.log_path);
    pthread_mutex_unlock(&srv_mu);
    if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid)
        return 0;
    check_run[C_EXIT] = true;
    fail(C_EXIT, "krappyd died without being killed (%s %d); the end of its log:",
         WIFSIGNALED(status) ? "signal" : "exit status",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "{ grep -n -m1 -e 'ERROR: AddressSanitizer' -e 'runtime error' '%s' >/dev/null && "
             "sed -n '/ERROR: AddressSanitizer\\|runtime error/,$p' '%s' | grep -v '^  0x' | "
             "head -n 45; } || tail -n 20 '%s'",
             log, log, log);
    fflush(stderr);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
    return kill_and_restart(true);
}

/* Sleep until `t` (ms), watching the server. @return -1 when it is lost. */
static int sleep_until(uint64_t t)
{
    for (;;) {
        if (watch_server() < 0)
            return -1;
        uint64_t now = e2e_now_ms();
        if (now >= t || atomic_load(&aborting))
            return 0;
        sleep_ms((unsigned)(t - now < 20 ? t - now : 20));
    }
}

/* ---- final verification ---- */

typedef struct verify_result {
    uint64_t events, next;
} verify_result;

/* Read the whole stream with FETCH and run checks 1, 3 (deliveries), 4, 5. */
static int verify_stream(verify_result *vr)
{
    check_run[C_ACKED] = check_run[C_STREAM] = check_run[C_DELIVERY] = true;
    check_run[C_DRAINED] = true;
    pthread_mutex_lock(&srv_mu);
    e2e_server s = srv;
    pthread_mutex_unlock(&srv_mu);
    krappy_opts o = {.timeout_ms = 60000};
    krappy_client *c = krappy_client_new(&o);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK) {
        fail(C_STREAM, "cannot connect to read the stream: %s", krappy_client_errmsg(c));
        krappy_client_free(c);
        return -1;
    }
    /* One bit per sent payload, per producer. */
    uint64_t *seen[MAX_PRODUCERS + 1] = {0};
    for (int p = 0; p <= opt.producers; p++) {
        uint64_t n = atomic_load(&sent_seq[p]);
        seen[p] = calloc(n / 64 + 1, sizeof(uint64_t));
        if (seen[p] == NULL)
            abort();
    }
    uint64_t off = 0, events = 0, stream_next = 0;
    for (;;) {
        krappy_events *ev = NULL;
        krappy_err e = krappy_fetch(c, topic, off, 10000, 8u << 20, 0, &ev);
        if (e != KRAPPY_OK) {
            fail(C_STREAM, "FETCH at %" PRIu64 ": %s", off, krappy_client_errmsg(c));
            break;
        }
        if (ev->count == 0) {
            stream_next = ev->next;
            krappy_events_free(ev);
            break;
        }
        if (off / 1000000 != (off + ev->count) / 1000000)
            say("verify: %" PRIu64 " events read", off + ev->count);
        for (size_t i = 0; i < ev->count; i++) {
            const krappy_event *x = &ev->events[i];
            if (x->offset != off)
                fail(C_STREAM, "event at offset %" PRIu64 " where %" PRIu64 " was due", x->offset,
                     off);
            off = x->offset + 1;
            events++;
            if (x->offset >= cap) {
                fail(C_STREAM, "offset %" PRIu64 " beyond the records", x->offset);
                continue;
            }
            if (deliv[x->offset] == 0)
                fail(C_DRAINED, "offset %" PRIu64 " was never delivered", x->offset);
            const char *t;
            size_t tl;
            unsigned p;
            uint64_t seq;
            if (krappy_cbor_text(x->value, x->value_len, &t, &tl) != 1 ||
                parse_value((const uint8_t *)t, tl, &p, &seq) < 0 || p > (unsigned)opt.producers) {
                fail(C_STREAM, "offset %" PRIu64 " holds a value that is not one of ours",
                     x->offset);
                continue;
            }
            if (seq >= atomic_load(&sent_seq[p])) {
                fail(C_STREAM, "offset %" PRIu64 " holds p%u-%" PRIu64 ", never sent", x->offset, p,
                     seq);
                continue;
            }
            if (seen[p][seq / 64] >> (seq % 64) & 1)
                fail(C_STREAM, "offset %" PRIu64 " holds p%u-%" PRIu64 " a second time", x->offset,
                     p, seq);
            seen[p][seq / 64] |= UINT64_C(1) << (seq % 64);
            uint64_t id = pack_id(p, seq);
            uint64_t want = exp_at[x->offset];
            if (want != 0 && (want & ID_MASK) != id)
                fail(C_ACKED, "offset %" PRIu64 " was acknowledged for %s but holds p%u-%" PRIu64,
                     x->offset, id_text(want).s, p, seq);
            if (dval[x->offset] != 0 && dval[x->offset] != id)
                fail(C_DELIVERY, "offset %" PRIu64 " holds p%u-%" PRIu64 " but was delivered as %s",
                     x->offset, p, seq, id_text(dval[x->offset]).s);
        }
        krappy_events_free(ev);
    }
    if (stream_next != off && !check_fail[C_STREAM])
        fail(C_STREAM, "FETCH ended at %" PRIu64 " but says next %" PRIu64, off, stream_next);
    /* Acknowledged events beyond the end: lost. */
    uint64_t hi = atomic_load(&acked_hi);
    for (uint64_t x = off; x < hi && x < cap; x++) {
        if (exp_at[x] != 0)
            fail(C_ACKED,
                 "offset %" PRIu64 " was acknowledged (%s, %s) and is not in the stream (its end "
                 "is %" PRIu64 ")",
                 x, exp_at[x] >> 60 == MODE_SYNC ? "sync" : "write", id_text(exp_at[x]).s, off);
        if (deliv[x] != 0)
            fail(C_DELIVERY, "offset %" PRIu64 " was delivered and is not in the stream", x);
    }
    for (int p = 0; p <= opt.producers; p++)
        free(seen[p]);
    krappy_client_free(c);
    vr->events = events;
    vr->next = off;
    return 0;
}

/* ---- main ---- */

static uint64_t watchdog_deadline;

/* Whatever hangs, the run ends: kill the server, keep its directory, fail. */
static void *watchdog_main(void *arg)
{
    (void)arg;
    while (e2e_now_ms() < watchdog_deadline)
        sleep_ms(200);
    pthread_mutex_lock(&srv_mu);
    pid_t pid = own_server ? srv.pid : 0;
    fprintf(stderr, "hammer: watchdog: still running at the deadline; giving up%s%s\n",
            own_server ? "; data and log kept in " : "", own_server ? srv.dir : "");
    if (pid > 0)
        kill(pid, SIGKILL);
    printf("hammer: 0 passed, 1 failed (watchdog, seed %" PRIu64 ")\n", opt.seed);
    fflush(stdout);
    _exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hammer [OPTIONS]\n"
            "  --producers N     producer connections (default 2)\n"
            "  --members M       members of the group (default 3)\n"
            "  --seconds S       load time (default 5)\n"
            "  --kills K         kill -9s of the server during the load (default 0)\n"
            "  --powercut        kills are power cuts (needs KRAPPY_SHIM, KRAPPY_POWERCUT)\n"
            "  --batch B         events per PUBLISH (default 50)\n"
            "  --inflight N      PUBLISHes in flight per producer (default 4)\n"
            "  --sync PCT        share of PUBLISHes with ack sync, the rest write (default 100)\n"
            "  --crash-every MS  a member crashes every MS on average; 0 never (default 1500)\n"
            "  --ack-wait MS     the members' ack_wait_ms (default 1000)\n"
            "  --poll-max N      POLL max (default 500)\n"
            "  --max-events N    events produced at most (default 20000000)\n"
            "  --max-lag N       producers pause while the group lags this much (default "
            "200000)\n"
            "  --prefill N       events published before the members start (default 0)\n"
            "  --drain S         seconds allowed for draining (default 60)\n"
            "  --seed X          random seed (default: from the clock)\n"
            "  --verbose         say what happens\n"
            "Starts $KRAPPYD (default bin/krappyd) in a temp dir, or uses $KRAPPY_E2E_ADDR.\n");
}

static int parse_args(int argc, char **argv)
{
    enum {
        O_PROD = 256,
        O_MEM,
        O_SEC,
        O_KILLS,
        O_PC,
        O_BATCH,
        O_INFL,
        O_SYNC,
        O_CRASH,
        O_ACKW,
        O_PMAX,
        O_MAXEV,
        O_LAG,
        O_PRE,
        O_DRAIN,
        O_SEED,
        O_VERB,
        O_HELP
    };
    static const struct option lo[] = {
        {"producers", required_argument, NULL, O_PROD},
        {"members", required_argument, NULL, O_MEM},
        {"seconds", required_argument, NULL, O_SEC},
        {"kills", required_argument, NULL, O_KILLS},
        {"powercut", no_argument, NULL, O_PC},
        {"batch", required_argument, NULL, O_BATCH},
        {"inflight", required_argument, NULL, O_INFL},
        {"sync", required_argument, NULL, O_SYNC},
        {"crash-every", required_argument, NULL, O_CRASH},
        {"ack-wait", required_argument, NULL, O_ACKW},
        {"poll-max", required_argument, NULL, O_PMAX},
        {"max-events", required_argument, NULL, O_MAXEV},
        {"max-lag", required_argument, NULL, O_LAG},
        {"prefill", required_argument, NULL, O_PRE},
        {"drain", required_argument, NULL, O_DRAIN},
        {"seed", required_argument, NULL, O_SEED},
        {"verbose", no_argument, NULL, O_VERB},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    bool seeded = false;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", lo, &li)) != -1) {
        char *end = NULL;
        double d = optarg ? strtod(optarg, &end) : 0;
        bool bad = optarg != NULL && (end == optarg || *end != '\0' || d < 0);
        switch (c) {
        case O_PROD:
            opt.producers = (int)d;
            bad |= d < 1 || d > MAX_PRODUCERS;
            break;
        case O_MEM:
            opt.members = (int)d;
            bad |= d < 1 || d > MAX_MEMBERS;
            break;
        case O_SEC:
            opt.seconds = d;
            bad |= d <= 0;
            break;
        case O_KILLS:
            opt.kills = (int)d;
            break;
        case O_PC:
            opt.powercut = true;
            break;
        case O_BATCH:
            opt.batch = (int)d;
            bad |= d < 1 || d > 100000;
            break;
        case O_INFL:
            opt.inflight = (int)d;
            bad |= d < 1 || d > MAX_INFLIGHT;
            break;
        case O_SYNC:
            opt.sync_pct = (int)d;
            bad |= d > 100;
            break;
        case O_CRASH:
            opt.crash_every_ms = (int)d;
            break;
        case O_ACKW:
            opt.ack_wait_ms = (int)d;
            bad |= d < 1;
            break;
        case O_PMAX:
            opt.poll_max = (int)d;
            bad |= d < 1;
            break;
        case O_MAXEV:
            opt.max_events = (uint64_t)d;
            bad |= d < 1;
            break;
        case O_LAG:
            opt.max_lag = (uint64_t)d;
            break;
        case O_PRE:
            opt.prefill = (uint64_t)d;
            break;
        case O_DRAIN:
            opt.drain_s = (int)d;
            bad |= d < 1;
            break;
        case O_SEED:
            opt.seed = strtoull(optarg, &end, 0);
            bad = *end != '\0';
            seeded = true;
            break;
        case O_VERB:
            opt.verbose = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "hammer: bad value '%s' for --%s\n", optarg, lo[li].name);
            return -1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return -1;
    }
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt.seed = ((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)getpid()) %
                   1000000007u;
    }
    return 0;
}

/* Publish the prefill as "producer" number opt.producers, ack write (one
 * PUBLISH at a time). */
static int prefill(void)
{
    krappy_opts o = {.timeout_ms = 60000};
    krappy_client *c = krappy_client_new(&o);
    krappy_batch *b = krappy_batch_new();
    unsigned p = (unsigned)opt.producers;
    char text[48], key[32];
    int rc = -1;
    if (c == NULL || b == NULL)
        abort();
    if (krappy_connect(c, srv.host, srv.port) != KRAPPY_OK ||
        krappy_register_producer(c, topic, "hammer-prefill", NULL) != KRAPPY_OK)
        goto out;
    for (uint64_t seq = 0; seq < opt.prefill;) {
        uint32_t n = opt.prefill - seq < 1000 ? (uint32_t)(opt.prefill - seq) : 1000;
        krappy_batch_reset(b);
        for (uint32_t i = 0; i < n; i++) {
            int tl = snprintf(text, sizeof text, "p%u-%" PRIu64, p, seq + i);
            int kl = snprintf(key, sizeof key, "k%u-%" PRIu64, p, (seq + i) % 97);
            if (krappy_batch_add_text(b, KRAPPY_KEY_TEXT, key, (size_t)kl, text, (size_t)tl) !=
                KRAPPY_OK)
                abort();
        }
        atomic_store(&sent_seq[p], seq + n);
        atomic_fetch_add(&st.sent, n);
        /* The last one "sync": everything durable before the load starts. */
        krappy_ack mode = seq + n == opt.prefill ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE;
        krappy_publish_result res;
        if (krappy_publish(c, b, mode, &res) != KRAPPY_OK)
            goto out;
        inflight f = {seq, n, mode};
        record_publish(p, &f, &res);
        seq += n;
    }
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "hammer: prefill failed: %s\n", krappy_client_errmsg(c));
    krappy_batch_free(b);
    krappy_client_free(c);
    return rc;
}

/* Create the topic and the group (start "earliest"). */
static int create_topic_and_group(void)
{
    krappy_client *c = krappy_client_new(NULL);
    kr_buf b;
    krappy_frame f;
    int rc = -1;
    kr_buf_init(&b, 1u << 20);
    if (c == NULL)
        abort();
    if (krappy_connect(c, srv.host, srv.port) != KRAPPY_OK ||
        krappy_register_producer(c, topic, "hammer-init", NULL) != KRAPPY_OK)
        goto out;
    kr_enc_consumer_register(&b, (kr_cid){0}, topic, GROUP, "init", KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, (uint64_t)opt.ack_wait_ms);
    if (krappy_call(c, KRAPPY_T_CONSUMER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "hammer: cannot create topic and group: %s\n", krappy_client_errmsg(c));
    kr_buf_free(&b);
    krappy_client_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    own_server = e2e_external_addr() == NULL;
    if (!own_server && opt.kills > 0) {
        fprintf(stderr, "hammer: KRAPPY_E2E_ADDR is set: no kills\n");
        opt.kills = 0;
    }
    if (opt.powercut && (getenv("KRAPPY_SHIM") == NULL || getenv("KRAPPY_POWERCUT") == NULL)) {
        fprintf(stderr, "hammer: --powercut needs KRAPPY_SHIM and KRAPPY_POWERCUT\n");
        return 2;
    }
    if (opt.powercut) {
        /* The shim is not sanitized and is preloaded before ASan's runtime. */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && asan[0] ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    int na = 0;
    server_args[na++] = "--checkpoint-interval";
    server_args[na++] = "50ms";
    server_args[na++] = "--log-level";
    server_args[na++] = "info";
    server_args[na++] = "--shutdown-timeout";
    server_args[na++] = "5s";
    if (opt.powercut)
        server_args[na++] = "--fsync-cursors";
    server_args[na] = NULL;

    cap = opt.max_events + opt.prefill + (uint64_t)opt.batch * MAX_INFLIGHT * MAX_PRODUCERS;
    exp_at = map_zero(cap * sizeof *exp_at);
    dval = map_zero(cap * sizeof *dval);
    deliv = map_zero(cap * sizeof *deliv);
    if (exp_at == NULL || dval == NULL || deliv == NULL) {
        fprintf(stderr, "hammer: cannot map records for %" PRIu64 " events\n", cap);
        return 1;
    }

    if (own_server) {
        if (start_server(&srv) < 0)
            return 1;
    } else {
        if (e2e_start_or_external(&srv) < 0)
            return 1;
        snprintf(topic, sizeof topic, "hammer-%d-%" PRIu64, (int)getpid(), opt.seed);
    }
    srv_up = true;
    printf("hammer: seed %" PRIu64 ", %d producers, %d members, %.1f s, %d kills%s, batch %d, "
           "sync %d%%, crash every %d ms, ack_wait %d ms, topic %s\n",
           opt.seed, opt.producers, opt.members, opt.seconds, opt.kills,
           opt.powercut ? " (power cuts)" : "", opt.batch, opt.sync_pct, opt.crash_every_ms,
           opt.ack_wait_ms, topic);
    fflush(stdout);
    if (create_topic_and_group() < 0 || (opt.prefill > 0 && prefill() < 0)) {
        if (own_server)
            e2e_stop(&srv, 10000);
        return 1;
    }

    pthread_t pt[MAX_PRODUCERS], mt[MAX_MEMBERS], wd;
    watchdog_deadline = e2e_now_ms() + (uint64_t)(opt.seconds * 1000) +
                        ((uint64_t)opt.drain_s + 600) * 1000 + (uint64_t)opt.kills * 15000;
    if (pthread_create(&wd, NULL, watchdog_main, NULL) == 0)
        pthread_detach(wd);
    member *members = calloc((size_t)opt.members, sizeof *members);
    if (members == NULL)
        abort();
    uint64_t t_start = e2e_now_ms();
    for (int i = 0; i < opt.members; i++) {
        members[i].idx = (unsigned)i;
        rng_seed(&members[i].r, opt.seed, (uint64_t)i);
        pthread_create(&mt[i], NULL, member_main, &members[i]);
    }
    for (int i = 0; i < opt.producers; i++)
        pthread_create(&pt[i], NULL, producer_main, (void *)(uintptr_t)i);

    /* The load, with kills spread over it at random. */
    rng r;
    rng_seed(&r, opt.seed, 999999);
    uint64_t load_ms = (uint64_t)(opt.seconds * 1000);
    uint64_t t_end = t_start + load_ms, last_up = t_start;
    bool server_lost = false;
    for (int k = 0; k < opt.kills && !server_lost; k++) {
        double slot = (double)load_ms / opt.kills;
        double jitter = ((double)(rnd(&r) % 1000) / 1000.0 - 0.5) * 0.8;
        uint64_t at = t_start + (uint64_t)(slot * (k + 0.5 + jitter));
        uint64_t min_at = last_up + 60 + rnd(&r) % 120; /* some load between kills */
        if (at < min_at)
            at = min_at;
        if (sleep_until(at) < 0 || kill_and_restart(false) < 0) {
            fail(C_ERRORS, "the server did not come back after kill %d", k + 1);
            server_lost = true;
            atomic_store(&aborting, 1);
        }
        last_up = e2e_now_ms();
    }
    if (!server_lost && sleep_until(t_end) < 0) {
        fail(C_ERRORS, "the server did not come back after a crash");
        server_lost = true;
        atomic_store(&aborting, 1);
    }
    uint64_t t_load = e2e_now_ms();
    atomic_store(&stop_produce, 1);
    for (int i = 0; i < opt.producers; i++)
        pthread_join(pt[i], NULL);
    uint64_t t_prod = e2e_now_ms();

    /* Check 2 at the end of the load, then drain. */
    gstats g = {0};
    uint64_t cursor_at_load = 0;
    if (!server_lost && current_stats(&g, false) == 0) {
        check_below_cursor(&below_checked, g.cursor, "at the end of the load");
        cursor_at_load = g.cursor;
    }
    atomic_store(&draining, 1);
    uint64_t drain_deadline = e2e_now_ms() + (uint64_t)opt.drain_s * 1000;
    bool drained = false;
    while (!server_lost && !atomic_load(&aborting) && e2e_now_ms() < drain_deadline) {
        if (current_stats(&g, true) == 0 && g.lag == 0 && g.pending == 0 && g.cursor == g.next) {
            drained = true;
            break;
        }
        if (sleep_until(e2e_now_ms() + 20) < 0) {
            server_lost = true;
            atomic_store(&aborting, 1);
        }
    }
    uint64_t t_drained = e2e_now_ms();
    check_run[C_DRAINED] = true;
    if (!drained)
        fail(C_DRAINED,
             "the group did not drain within %d s (cursor %" PRIu64 ", next %" PRIu64
             ", pending %" PRIu64 ")",
             opt.drain_s, g.cursor, g.next, g.pending);
    atomic_store(&stop_members, 1);
    for (int i = 0; i < opt.members; i++)
        pthread_join(mt[i], NULL);
    free(members);

    verify_result vr = {0};
    uint64_t t_verify = e2e_now_ms();
    if (!server_lost && watch_server() < 0)
        server_lost = true;
    if (!server_lost) {
        verify_stream(&vr);
        if (drained && g.next != vr.next)
            fail(C_DRAINED, "drained at next %" PRIu64 " but the stream ends at %" PRIu64, g.next,
                 vr.next);
    }
    t_verify = e2e_now_ms() - t_verify;
    check_run[C_ERRORS] = true;
    if (own_server) {
        check_run[C_EXIT] = true;
        (void)watch_server();
        bool keep = false;
        for (int i = 0; i < C_N; i++)
            keep |= atomic_load(&check_fail[i]) > 0;
        int status = keep ? e2e_stop_keep(&srv, 15000) : e2e_stop(&srv, 15000);
        if (status != 0)
            fail(C_EXIT, "krappyd exit status %d", status);
        if (keep || status != 0)
            fprintf(stderr, "hammer: data and log kept in %s\n", srv.dir);
    }

    /* Summary. */
    double load_s = (double)(t_load - t_start) / 1000.0;
    double cons_s = (double)(t_drained - t_start) / 1000.0;
    unsigned long acked = atomic_load(&st.acked_sync) + atomic_load(&st.acked_write);
    printf("  produced : %lu events sent in %lu batches, %lu acknowledged (sync %lu, write %lu), "
           "%lu uncertain (connection lost); %.0f events/s acknowledged over %.1f s\n",
           atomic_load(&st.sent), atomic_load(&st.batches), acked, atomic_load(&st.acked_sync),
           atomic_load(&st.acked_write), atomic_load(&st.uncertain),
           load_s > 0 ? (double)(acked - opt.prefill) / load_s : 0, load_s);
    printf("  stream   : %" PRIu64 " events (next %" PRIu64 "), read back in %.1f s\n", vr.events,
           vr.next, (double)t_verify / 1000.0);
    printf("  consumed : %lu deliveries (%lu redeliveries) in %lu POLLs; ACKs %lu by upto, "
           "%lu by offsets, naming %lu events, %lu ignored; %lu abandoned, %lu acknowledged late\n",
           atomic_load(&st.deliveries), atomic_load(&st.redeliveries), atomic_load(&st.polls),
           atomic_load(&st.acks_upto), atomic_load(&st.acks_offsets), atomic_load(&st.acked_named),
           atomic_load(&st.ignored), atomic_load(&st.abandoned), atomic_load(&st.late));
    printf("  consume+ack: cursor %" PRIu64 " at the end of the load (%.0f events/s), "
           "%" PRIu64 " drained after %.1f s (%.0f events/s); drain took %.1f s\n",
           cursor_at_load, load_s > 0 ? (double)cursor_at_load / load_s : 0, vr.next, cons_s,
           cons_s > 0 ? (double)vr.next / cons_s : 0, (double)(t_drained - t_prod) / 1000.0);
    printf("  faults   : %lu member crashes (%lu under the same name), %lu member connects, "
           "%lu producer reconnects, %d kills%s (restart %.0f ms on average), %d server crashes\n",
           atomic_load(&st.crashes), atomic_load(&st.takeovers_risked), atomic_load(&st.reconnects),
           atomic_load(&st.prod_reconnects), kills_done, opt.powercut ? " with power cuts" : "",
           kills_done ? restart_ms_total / kills_done : 0.0, crashes_seen);
    int passed = 0, failed = 0;
    for (int i = 0; i < C_N; i++) {
        if (!check_run[i])
            continue;
        unsigned long n = atomic_load(&check_fail[i]);
        printf("  check %-48s %s", check_name[i], n ? "FAILED" : "ok");
        if (n)
            printf(" (%lu)", n);
        printf("\n");
        if (n)
            failed++;
        else
            passed++;
    }
    printf("hammer: %d passed, %d failed (seed %" PRIu64 ")\n", passed, failed, opt.seed);
    return failed ? 1 : 0;
}
