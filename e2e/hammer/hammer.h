/*
 * e2e/hammer/hammer.h - what the parts of e2e/hammer share: the options,
 * the checks, the counters, the per-offset records and the server under
 * test.
 *
 *   main.c      options, the load's timeline (kills, drain), the summary
 *   producer.c  producers: verifiable events, what each acknowledgement said
 *   member.c    the group's members: POLL, ACK (late, partial, never), crashes
 *   server.c    krappyd: connecting, kill -9 / power cut and restart, STATS
 *   verify.c    the checks, the per-offset records, the final read-back
 *
 * Producer and member threads share state only through the atomics and the
 * locks declared here.
 */
#ifndef KR_E2E_HAMMER_H
#define KR_E2E_HAMMER_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../harness.h"
#include "krappy/client.h"

#define GROUP           "hammer"
#define MAX_PRODUCERS   256
#define MAX_MEMBERS     256
#define MAX_INFLIGHT    64
#define POLL_WAIT_MS    250
#define POLL_MAX_BYTES  (4u << 20)
#define CLIENT_TIMEOUT  20000 /* ms; a server silent this long is a failure */
#define RECONNECT_LIMIT 60000 /* ms to get a server back */
#define NOTE_LIMIT      10    /* messages printed per check */
#define HM_KEYS         97    /* keys per producer: seq's key is "k<P>-<seq % HM_KEYS>" */
/* ---- options (main.c) ---- */

typedef struct hm_options {
    int producers, members, kills, batch, crash_every_ms, sync_pct, ack_wait_ms, poll_max;
    int inflight, drain_s;
    double seconds;
    uint64_t seed, max_events, prefill, max_lag;
    bool powercut, verbose;
    bool idempotent; /* producers are libkrappy's idempotent handles */
    bool compact;    /* the topic is compacted while the load runs */
} hm_options;

extern hm_options hm_opt;

/* Say what happens, on stderr, with --verbose only. */
__attribute__((format(printf, 1, 2))) void hm_say(const char *fmt, ...);

/* ---- counters and flags (main.c) ---- */

struct hm_counters {
    atomic_ulong sent, acked_sync, acked_write, uncertain, batches, prod_reconnects;
    atomic_ulong deliveries, redeliveries, polls, acks_upto, acks_offsets, acked_named, ignored;
    atomic_ulong crashes, reconnects, abandoned, late, takeovers_risked;
};

extern struct hm_counters hm_st;

/* Highest offset+1 acknowledged to a producer; highest cursor an ACK's OK
 * reported. */
extern atomic_ulong hm_acked_hi, hm_ack_cursor_max;

extern atomic_int hm_stop_produce, hm_stop_members, hm_draining, hm_aborting;

/* ---- checks (verify.c) ---- */

enum {
    C_ACKED,
    C_BELOW_CURSOR,
    C_DRAINED,
    C_STREAM,
    C_DELIVERY,
    C_CURSOR_DURABLE,
    C_ERRORS,
    C_EXIT,
    C_EXACTLY_ONCE,
    C_LATEST,
    C_N
};
/* Which checks ran (only those are reported) and how often each failed. */
extern bool hm_check_run[C_N];
extern atomic_ulong hm_check_fail[C_N];

/* Count a failure of `check` and print its message (the first NOTE_LIMIT
 * of each check; thread-safe). */
__attribute__((format(printf, 2, 3))) void hm_fail(int check, const char *fmt, ...);

/* Print one line per check that ran, then the passed/failed count with
 * the seed. @return the number of checks that failed. */
int hm_report_checks(void);

/* ---- per-offset records (verify.c; anonymous memory, touched as used) ---- */

/*
 * exp_at[o]: what a PUBLISH acknowledgement said is at offset o: mode << 60
 *            | producer << 40 | seq, plus 1 in the low part; 0 = nothing.
 * dval[o]:   the payload first delivered at o (id + 1), 0 = none yet.
 * deliv[o]:  deliveries of o to members.
 */
#define ID_MASK   ((UINT64_C(1) << 60) - 1)
#define MODE_SYNC UINT64_C(2)
#define MODE_WRIT UINT64_C(1)
extern uint64_t *hm_exp_at, *hm_dval;
extern uint32_t *hm_deliv;
extern uint64_t hm_cap; /* offsets < cap can be recorded */
extern atomic_ulong hm_sent_seq[MAX_PRODUCERS + 1];

/* The record of producer p's seq: (p << 40 | seq) + 1. */
uint64_t hm_pack_id(unsigned p, uint64_t seq);

/* "p<P>-<seq>" of a packed id (as stored: plus 1, mode bits ignored). */
typedef struct hm_idtext {
    char s[40];
} hm_idtext;

hm_idtext hm_id_text(uint64_t stored);

/* With --compact: may the event of a stored id (as in hm_exp_at) be gone
 * from the stream - was a later event of its key sent? */
bool hm_key_sent_later(uint64_t stored);

/* Parse "p<P>-<seq>" exactly. @return 0 or -1. */
int hm_parse_value(const uint8_t *s, size_t n, unsigned *p, uint64_t *seq);

/* Check 2 on [*from, cursor): each offset was delivered at least once;
 * *from moves up to cursor. */
void hm_check_below_cursor(uint64_t *from, uint64_t cursor, const char *when);

extern uint64_t hm_below_checked; /* check 2 done below this offset */

typedef struct hm_verify_result {
    uint64_t events, next;
} hm_verify_result;

/* Read the whole stream with FETCH and run checks 1, 3 (deliveries), 4, 5.
 * @return 0, or -1 when the server cannot be reached. */
int hm_verify_stream(hm_verify_result *vr);

/* ---- random numbers (xorshift64*), sleeping, atomic max ---- */

typedef struct hm_rng {
    uint64_t s;
} hm_rng;

static inline uint64_t hm_rnd(hm_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static inline void hm_rng_seed(hm_rng *r, uint64_t seed, uint64_t stream)
{
    r->s = (seed + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ (stream + 1) * UINT64_C(0xD1B54A32D192ED03);
    if (r->s == 0)
        r->s = 1;
    for (int i = 0; i < 4; i++)
        (void)hm_rnd(r);
}

static inline void hm_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static inline void hm_atomic_max(atomic_ulong *a, uint64_t v)
{
    unsigned long cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, (unsigned long)v))
        ;
}

/* ---- the server (server.c) ---- */

extern char hm_topic[128];
extern pthread_mutex_t hm_srv_mu;
extern e2e_server hm_srv;       /* host/port read under hm_srv_mu */
extern bool hm_srv_up;          /* under hm_srv_mu: the address may be used */
extern atomic_ulong hm_srv_gen; /* incremented before each kill */
extern bool hm_own_server;
extern const char *hm_server_args[24];

/* Members record a batch of deliveries under the read side; a power cut
 * resets the records above the surviving stream under the write side. */
extern pthread_rwlock_t hm_rec_lock;

/* Connect to the current server, waiting while it is down.
 * @return 0, or -1 when aborting or it never came back. */
int hm_connect_retry(krappy_client *c, unsigned long *gen);

/* A call failed locally (the connection is gone): expected only when the
 * server was killed since the connection was made. Closes c. */
void hm_lost(krappy_client *c, unsigned long gen, const char *who, const char *what);

typedef struct hm_gstats {
    uint64_t next, cursor, pending, lag, members;
} hm_gstats;

/* STATS of the topic and the group on the server s, or the current one.
 * @return 0, or -1 (message on stderr when not quiet). */
int hm_group_stats(const e2e_server *s, hm_gstats *g, bool quiet);
int hm_current_stats(hm_gstats *g, bool quiet);

/* Start krappyd for the run (under the shim with --powercut). @return 0 or -1. */
int hm_start_server(e2e_server *s);

/*
 * kill -9 the server (and cut the power, with --powercut), restart it on
 * the same data, check what must have survived, then let clients at it.
 * With `dead`, the server has died by itself already (and was reaped).
 * @return 0, or -1 when the server does not come back.
 */
int hm_kill_and_restart(bool dead);

/* Notice a server that died by itself (a failure), and restart it.
 * @return 0, or -1 when it stays down. */
int hm_watch_server(void);

/* Sleep until `t` (ms), watching the server. @return -1 when it is lost. */
int hm_sleep_until(uint64_t t);

extern double hm_restart_ms_total;
extern int hm_kills_done;
extern int hm_crashes_seen; /* the server died without being killed */

/* ---- producers (producer.c) and members (member.c) ---- */

/* Idempotent producer p's events are all acknowledged, so its every sent
 * event must be in the stream (check 9): set by the producer thread. */
extern atomic_int hm_all_acked[MAX_PRODUCERS + 1];

/* Start the producer threads; they stop at hm_stop_produce (or when the
 * event budget is spent) once their PUBLISHes in flight are answered
 * (with --idempotent: once everything they sent is acknowledged). */
void hm_producers_start(void);
void hm_producers_join(void);

/* Publish --prefill events before the load. @return 0 or -1. */
int hm_prefill(void);

/* Start the member threads; they stop at hm_stop_members. */
void hm_members_start(void);
void hm_members_join(void);

#endif
